# Stand-in for marketplace-community lib/community/clitester/image.rb (master fa6fbbd).
module CLITester

    # image.rb:6-28
    class CLIImage

        def self.list(_options = '')
            []
        end

        def self.create(name, datastore = 1, options = '')
            standin_record("oneimage create --name '#{name}' -d '#{datastore}' #{options}")
        end

    end

end
